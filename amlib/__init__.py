"""amlib: the helper package of the AudioMarathon companion.

Tasks (`amlib.tasks`), data (`amlib.data`), metrics (`amlib.metrics`), model adapters
(`amlib.models`), the evaluation runner (`amlib.runner`) and reporting (`amlib.report`).
"""

__version__ = "0.1.0"
