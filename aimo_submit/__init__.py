"""aimo-submit: a robust Kaggle AIMO submission around a math-reasoning LLM."""

__version__ = "0.1.0"
