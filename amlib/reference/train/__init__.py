"""Training of the reference audio LM (projector, optional LoRA) on the offline suite's train split."""
