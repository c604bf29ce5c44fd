"""Copy-synthesis evaluation: the report (metrics per file, beside Griffin-Lim) and ``python -m waveglow.evaluate``."""

from waveglow.evaluate.report import EvaluationReport, evaluate_model

__all__ = ["EvaluationReport", "evaluate_model"]
