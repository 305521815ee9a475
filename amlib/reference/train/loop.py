"""The training loop of the reference model: AdamW on the projector (and LoRA), seeded, resumable.

Every `save_every` steps the trainable weights, the optimizer state and the RNG position are saved
in `out/checkpoint.pt`; a re-run with the same settings continues from there. The log
(`out/train_log.jsonl`) holds one line per logged step: step, loss, learning rate, seconds.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from amlib.data import Sample, read_manifest
from amlib.reference.model import LORA_TARGETS
from amlib.reference.train.examples import IGNORE, collate, encode
from amlib.reference.train.joined_asr import JoinedASR, plan_joined


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    lora_lr: float = 2e-4
    warmup: int = 50
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    seed: int = 0
    log_every: int = 10
    save_every: int = 200
    workers: int = 4
    data: list[str] = field(default_factory=list)
    val_data: list[str] = field(default_factory=list)  # held-out folders: loss logged every eval_every steps
    eval_every: int = 50
    init: str | None = None  # a save_trained folder to start from (warm start) instead of the fresh projector
    time_limit_s: float | None = None  # pause (checkpoint and return) once a step ends past this many seconds
    task_weights: dict[str, float] | None = None  # None: uniform over items; else per-task draw (weighted_batches)
    joined_asr: list[float] | None = None  # [n, min_s, max_s]: n long ASR examples joined from short clips (joined_asr.py)
    # long ASR validation folders (e.g. joined from held-out clips: long_form.write_joined): each
    # evaluation transcribes them greedily and logs their WAR and the answers that reach the budget
    val_long: list[str] = field(default_factory=list)
    # which validation number picks the kept weights (out/best/): "task_mean", the mean over tasks of
    # each task's mean item loss (a task with many validation items weighs as much as one with few),
    # "item_mean", the mean over items (runs up to 9), or "long_war", the highest WAR on val_long
    selection: str = "task_mean"
    # evaluate the starting weights once before the first step (logged as step 0; a candidate like the others)
    eval_at_start: bool = False
    # with selection "long_war": an evaluation is a candidate only if its choice tasks' mean validation loss
    # is at most this many times the step-0 evaluation's (the long-form gain may not cost the choice tasks)
    choice_guard: float | None = None


class SplitError(ValueError):
    """A folder given for training or validation holds an item that is not of the train split."""


def load_samples(dirs: list[str | Path]) -> list[Sample]:
    """The samples of every folder, each of which must be of the train split: the test split is only
    evaluated, never used for a decision (training or validation-based selection)."""
    samples: list[Sample] = []
    for d in dirs:
        for sample in read_manifest(d):
            if sample.split != "train":
                raise SplitError(f"{Path(d) / 'manifest.jsonl'}: item {sample.id} has split {sample.split!r}; training "
                                 f"and validation use only split 'train' items (the test split is only evaluated)")
            samples.append(sample)
    if not samples:
        raise ValueError("no training samples")
    return samples


def training_items(cfg: TrainConfig) -> list:
    """The samples of cfg.data, then the joined long ASR examples planned from them (if asked)."""
    samples = load_samples(cfg.data)
    if not cfg.joined_asr:
        return samples
    n, min_s, max_s = cfg.joined_asr
    return samples + plan_joined(samples, int(n), float(min_s), float(max_s), seed=cfg.seed)


def data_summary(samples: list) -> dict:
    """Items, hours and duration range per task of the training items (recorded with the weights)."""
    out = {}
    for task in sorted({s.task for s in samples}):
        d = [s.duration_s for s in samples if s.task == task]
        out[task] = {"items": len(d), "hours": round(sum(d) / 3600, 3), "min_s": round(min(d), 1), "max_s": round(max(d), 1)}
    return out


class _EncodedSet(torch.utils.data.Dataset):
    def __init__(self, adapter, samples):
        self.adapter, self.samples = adapter, samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        item = self.samples[i]
        if isinstance(item, JoinedASR):
            return encode(self.adapter, item.sample(), audio=item.audio())
        return encode(self.adapter, item)


def batches(n: int, batch_size: int, steps: int, seed: int, start: int = 0):
    """Index batches for `steps` steps: seeded shuffles of the whole set, epoch after epoch."""
    rng = np.random.default_rng(seed)
    order: list[int] = []
    out = []
    while len(out) < steps:
        if len(order) < batch_size:
            order += rng.permutation(n).tolist()
        out.append(order[:batch_size])
        order = order[batch_size:]
    return out[start:]


def weighted_batches(tasks: list[str], weights: dict[str, float], batch_size: int, steps: int, seed: int,
                     start: int = 0) -> list[list[int]]:
    """Index batches whose every slot draws a task with probability proportional to `weights`
    (tasks not named get none), then that task's next item from its own seeded shuffles: an
    ASR-heavy stage without duplicating folders."""
    present = sorted(set(tasks))
    unknown = sorted(set(weights) - set(present))
    if unknown:
        raise ValueError(f"task weights name {unknown}, which the training data lack (it has {present})")
    if any(w < 0 for w in weights.values()):
        raise ValueError(f"task weights must be >= 0, got {weights}")
    chosen = [t for t in present if weights.get(t, 0) > 0]
    if not chosen:
        raise ValueError(f"task weights {weights} select no task")
    p = np.array([weights[t] for t in chosen], dtype=float)
    rng = np.random.default_rng(seed)
    members = {t: [i for i, task in enumerate(tasks) if task == t] for t in chosen}
    queues: dict[str, list[int]] = {t: [] for t in chosen}
    out = []
    for _ in range(steps):
        batch = []
        for k in rng.choice(len(chosen), size=batch_size, p=p / p.sum()):
            task = chosen[int(k)]
            if not queues[task]:
                queues[task] = [members[task][int(j)] for j in rng.permutation(len(members[task]))]
            batch.append(queues[task].pop())
        out.append(batch)
    return out[start:]


def loss_on_targets(model, batch: dict) -> torch.Tensor:
    return target_losses(model, batch).mean()


def target_losses(model, batch: dict) -> torch.Tensor:
    """Each sample's mean token loss on its target (the training loss is their mean): a 1,000-token transcript
    and a one-letter answer weigh the same, so ASR does not drown the choice tasks. Logits are
    computed only at target positions (the LM head runs on those hidden states alone: a 300 s
    item has ~3,800 prompt positions x 49 k vocabulary that would otherwise be materialised)."""
    labels = batch.pop("labels")
    lm = model.language_model
    head = lm.lm_head
    lm.lm_head = torch.nn.Identity()
    try:
        hidden = model(**batch, use_cache=False).logits[:, :-1]
    finally:
        lm.lm_head = head
    target = labels[:, 1:]
    keep = target != IGNORE
    token_loss = F.cross_entropy(head(hidden[keep]).float(), target[keep], reduction="none")
    rows = keep.nonzero()[:, 0]
    per_sample = torch.zeros(len(labels), device=token_loss.device).index_add_(0, rows, token_loss)
    counts = keep.sum(1)
    if (counts == 0).any():  # cannot happen with encode(): every target ends with <|im_end|>
        raise ValueError("a training example has no target token")
    return per_sample / counts


def lr_at(step: int, cfg: TrainConfig, base: float) -> float:
    if step < cfg.warmup:
        return base * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def train(adapter, cfg: TrainConfig, out: str | Path, device: str = "cpu") -> Path:
    """Train the adapter's model in place; write weights (`save_trained` layout), config and log."""
    from amlib.reference.model import save_trained, trainable_parameters, warm_start

    if cfg.selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, not {cfg.selection!r}")
    if cfg.selection == "long_war" and not cfg.val_long:
        raise ValueError("selection 'long_war' needs val_long folders (long ASR validation items)")
    if cfg.choice_guard is not None and not (cfg.eval_at_start and cfg.val_data and cfg.selection == "long_war"):
        raise ValueError("choice_guard compares with the step-0 evaluation: it needs eval_at_start, val_data "
                         "(the choice tasks' loss) and selection 'long_war'")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = adapter.model.to(device)
    model.train()
    params = trainable_parameters(model, lora=cfg.lora, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                                  targets=cfg.lora_targets)
    lora_params = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    proj_params = list(model.multi_modal_projector.parameters())
    groups = [{"params": proj_params, "lr": cfg.lr, "base": cfg.lr}]
    if lora_params:
        groups.append({"params": lora_params, "lr": cfg.lora_lr, "base": cfg.lora_lr})
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    init_revision = warm_start(model, cfg.init) if cfg.init else None
    samples = training_items(cfg)
    start = _resume(out, model, opt, cfg)
    plan = batches(len(samples), cfg.batch_size, cfg.steps, cfg.seed, start) if not cfg.task_weights else \
        weighted_batches([x.task for x in samples], cfg.task_weights, cfg.batch_size, cfg.steps, cfg.seed, start)
    data = torch.utils.data.DataLoader(
        _EncodedSet(adapter, samples), batch_sampler=plan, num_workers=cfg.workers,
        collate_fn=lambda b: collate(b, adapter.pad_token_id), persistent_workers=False,
    )
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else torch.autocast("cpu", enabled=False)
    val_samples = load_samples(cfg.val_data) if cfg.val_data else []
    val_long = load_samples(cfg.val_long) if cfg.val_long else []
    best_file = out / "best" / "step.json"  # a resumed run keeps the best of its earlier part
    best_val = _selected_value(best_file, cfg) if start and best_file.is_file() else math.inf
    log = (out / "train_log.jsonl").open("a")
    t0, running = time.perf_counter(), []

    def evaluate_and_select(done: int) -> None:
        """Validation after `done` steps, logged; out/best/ keeps the selected candidate so far."""
        nonlocal best_val
        record = {"step": done}
        if val_samples:
            val, per_task = validation_loss(model, adapter, val_samples, cfg, device, autocast)
            record.update(val_loss=val, val_task_mean=float(np.mean(list(per_task.values()))),
                          val_choice_mean=choice_mean(per_task), val_loss_per_task=per_task)
        if val_long:
            record.update(long_form_record(adapter, val_long, out / "val_long" / f"step-{done:06d}.jsonl", cfg.batch_size))
        record["seconds"] = round(time.perf_counter() - t0, 1)
        log.write(json.dumps(record) + "\n")
        log.flush()
        if cfg.choice_guard is not None and record["val_choice_mean"] is None:
            raise ValueError(f"choice_guard: the validation folders {cfg.val_data} hold no choice-task item")
        if cfg.choice_guard is not None and record["val_choice_mean"] > cfg.choice_guard * _start_choice_mean(out, record):
            return  # not a candidate: the choice tasks got worse than the guard allows
        # the minimised value: a loss, or minus the long-form WAR
        chosen = -record["val_long_war"] if cfg.selection == "long_war" else \
            record["val_task_mean"] if cfg.selection == "task_mean" else record["val_loss"]
        if chosen < best_val:  # early-stopping candidate: out/best/ holds the selected weights
            best_val = chosen
            save_trained(model, out / "best")
            (out / "best" / "step.json").write_text(json.dumps({**{k: v for k, v in record.items() if k != "seconds"},
                                                                "selection": cfg.selection, "selected_on": chosen}))

    if cfg.eval_at_start and start == 0 and (val_samples or val_long):
        evaluate_and_select(0)
    for step, batch in enumerate(data, start=start):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg, g["base"])
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast:
            loss = loss_on_targets(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        running.append(loss.item())
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            log.write(json.dumps({"step": step + 1, "loss": float(np.mean(running)), "lr": opt.param_groups[0]["lr"],
                                  "seconds": round(time.perf_counter() - t0, 1)}) + "\n")
            log.flush()
            running = []
        if (val_samples or val_long) and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            evaluate_and_select(step + 1)
        if (step + 1) % cfg.save_every == 0 and step + 1 < cfg.steps:
            _checkpoint(out, model, opt, step + 1)
        if cfg.time_limit_s is not None and time.perf_counter() - t0 > cfg.time_limit_s and step + 1 < cfg.steps:
            _checkpoint(out, model, opt, step + 1)  # paused: the same call again resumes here
            log.close()
            return out
    log.close()
    model.eval()
    save_trained(model, out)
    (out / "train_config.json").write_text(json.dumps({**asdict(cfg), "init_revision": init_revision,
                                                       "data_summary": data_summary(samples)}, indent=1))
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return out


SELECTIONS = ("task_mean", "item_mean", "long_war")
NOT_CHOICE = ("ASR", "JOINED-ASR")


def choice_mean(per_task: dict[str, float]) -> float | None:
    """The mean validation loss over the choice tasks (None when there is none)."""
    losses = [v for t, v in per_task.items() if t not in NOT_CHOICE]
    return float(np.mean(losses)) if losses else None


def _start_choice_mean(out: Path, current: dict) -> float:
    """The step-0 evaluation's choice mean, from the log (it survives a resume); `current` if it is step 0."""
    if current["step"] == 0:
        return current["val_choice_mean"]
    for line in (out / "train_log.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("step") == 0 and "val_choice_mean" in row:
            return row["val_choice_mean"]
    raise ValueError(f"{out / 'train_log.jsonl'}: no step-0 evaluation to guard the choice tasks against")


def long_form_record(adapter, samples: list[Sample], out_file: Path, batch_size: int) -> dict:
    """The long-form validation's log fields (`long_form.long_form_validation`); a file left by an
    evaluation of the same step before a resume is replaced."""
    from amlib.reference.train.long_form import long_form_validation

    out_file.unlink(missing_ok=True)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    result = long_form_validation(adapter, samples, out_file, batch_size=batch_size)
    return {"val_long_war": result["war"], "val_long_war_capped": result["war_capped"],
            "val_long_budget_hits": result["budget_hits"], "val_long_items": result["items"]}


def _selected_value(best_file: Path, cfg: TrainConfig) -> float:
    saved = json.loads(best_file.read_text())
    return saved.get("selected_on", saved["val_loss"])


def validation_loss(model, adapter, samples: list[Sample], cfg: TrainConfig, device: str,
                    autocast) -> tuple[float, dict[str, float]]:
    """Mean per-sample target loss on held-out samples (same loss as training, no gradients), and
    its mean per task (rounded, for the log)."""
    data = torch.utils.data.DataLoader(
        _EncodedSet(adapter, samples), batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers,
        collate_fn=lambda b: collate(b, adapter.pad_token_id))
    model.eval()
    losses: list[float] = []
    with torch.no_grad(), autocast:
        for batch in data:
            losses += target_losses(model, {k: v.to(device) for k, v in batch.items()}).tolist()
    model.train()
    tasks = [s.task for s in samples]
    per_task = {t: round(float(np.mean([x for x, u in zip(losses, tasks) if u == t])), 4) for t in sorted(set(tasks))}
    return float(np.mean(losses)), per_task


def _trainable_state(model) -> dict:
    return {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}


def _checkpoint(out: Path, model, opt, step: int) -> None:
    tmp = out / "checkpoint.pt.tmp"
    torch.save({"step": step, "weights": _trainable_state(model), "optimizer": opt.state_dict()}, tmp)
    tmp.replace(out / "checkpoint.pt")


def _resume(out: Path, model, opt, cfg: TrainConfig) -> int:
    path = out / "checkpoint.pt"
    if not path.is_file():
        return 0
    saved = torch.load(path, map_location="cpu")
    state = dict(model.named_parameters())
    for name, value in saved["weights"].items():
        state[name].data.copy_(value.to(state[name].device))
    opt.load_state_dict(saved["optimizer"])
    return int(saved["step"])
