"""Validation metrics and plots for predicted VPI probabilities against known labels.

Everything takes ``proba`` — (n_cases,) predicted probabilities of VPI in [0, 1] — and
``labels`` — (n_cases,) 0/1 (or bool) with 1 = VPI present — and needs both classes present.

* discrimination: ROC AUC with a percentile confidence interval from a *stratified* bootstrap
  (cases resampled within each class, seeded, so every replicate has both classes);
* threshold: :func:`youden_threshold` (max sensitivity + specificity − 1; a case is called
  positive when ``proba >= threshold``) and sensitivity / specificity / PPV / NPV at it;
* calibration: Brier score; calibration slope and intercept from the logistic recalibration
  ``logit P(y=1) = intercept + slope · logit(p)`` (p clipped to [1e-6, 1 − 1e-6]; ideal slope 1,
  intercept 0); reliability curve over quantile bins;
* clinical utility: decision-curve analysis, net benefit ``TP/n − FP/n · t/(1 − t)`` at
  threshold probabilities t for the model, treat-all and treat-none (always 0).

All of it lands in one frozen :class:`ValidationMetrics` whose ``to_dict()`` is JSON-safe (NaN →
``None``). :func:`save_plots` writes interactive plotly HTML (sharing one offline
``plotly.min.js``) and matplotlib PNGs (for PDF reports) of ROC, calibration, decision curve,
feature importance and the PSO trajectory.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.05, 0.95, 400); y = (rng.uniform(size=400) < p).astype(int)
    >>> m = evaluate_predictions(p, y, threshold=0.5, n_bootstrap=200)
    >>> m.auc_ci_low < m.auc < m.auc_ci_high, m.decision_curve.net_benefit_none[0]
    (True, 0.0)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_curve

_EPS = 1e-6


# --------------------------------------------------------------------------- records
def json_safe(value: Any) -> Any:
    """Recursively convert to JSON-safe types: tuples/arrays → lists, numpy scalars → Python,
    NaN/inf → ``None``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values, dtype=float).ravel())


@dataclass(frozen=True)
class RocCurve:
    """ROC curve points: false-positive rate and true-positive rate (both ascending)."""

    fpr: tuple[float, ...]
    tpr: tuple[float, ...]


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per quantile bin: mean predicted probability, observed VPI fraction, number of cases."""

    mean_predicted: tuple[float, ...]
    observed_fraction: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class DecisionCurve:
    """Net benefit at each threshold probability for the model, treat-all and treat-none."""

    thresholds: tuple[float, ...]
    net_benefit_model: tuple[float, ...]
    net_benefit_all: tuple[float, ...]
    net_benefit_none: tuple[float, ...]


@dataclass(frozen=True)
class ValidationMetrics:
    """Metrics of one probability vector against labels (see the module docstring).

    ``threshold_method`` says where ``threshold`` came from, e.g. ``"youden (out-of-fold)"``
    or ``"fixed (from training)"``. Undefined ratios (e.g. PPV with no positive call) are NaN.
    """

    n_cases: int
    n_positive: int
    prevalence: float
    auc: float
    auc_ci_low: float
    auc_ci_high: float
    ci_level: float
    n_bootstrap: int
    threshold: float
    threshold_method: str
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    true_positive: int
    false_positive: int
    true_negative: int
    false_negative: int
    brier: float
    calibration_slope: float
    calibration_intercept: float
    roc: RocCurve
    reliability: ReliabilityCurve
    decision_curve: DecisionCurve

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples → lists, NaN/inf → ``None``)."""
        return json_safe(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ValidationMetrics":
        """Inverse of :meth:`to_dict` (``None`` → NaN)."""
        def num(v: Any) -> float:
            return float("nan") if v is None else float(v)

        def seq(v: Sequence[Any]) -> tuple[float, ...]:
            return tuple(num(x) for x in v)

        nested = {"roc": RocCurve, "reliability": ReliabilityCurve, "decision_curve": DecisionCurve}
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = data[f.name]
            if f.name in nested:
                sub = nested[f.name]
                kwargs[f.name] = sub(**{
                    k: (tuple(int(x) for x in v) if k == "counts" else seq(v)) for k, v in value.items()
                })
            elif f.type in ("int", int):
                kwargs[f.name] = int(value)
            elif f.type in ("str", str):
                kwargs[f.name] = str(value)
            else:
                kwargs[f.name] = num(value)
        return cls(**kwargs)


# --------------------------------------------------------------------------- metrics
def check_predictions(proba: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return (proba float64, labels int 0/1), both (n_cases,).

    Raises:
        ValueError: lengths differ, probabilities outside [0, 1] or non-finite, labels other
            than 0/1, or only one class present.
    """
    p = np.asarray(proba, dtype=float).ravel()
    y_raw = np.asarray(labels).ravel()
    if p.shape != y_raw.shape:
        raise ValueError(f"got {p.size} probabilities but {y_raw.size} labels")
    if p.size == 0:
        raise ValueError("no predictions to evaluate")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise ValueError("probabilities must be finite and within [0, 1]")
    y = binary_labels(y_raw)
    if y.min() == y.max():
        raise ValueError("labels contain only one class; AUC and calibration need both VPI and no-VPI cases")
    return p, y


def _auc(p: np.ndarray, y: np.ndarray) -> float:
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(p)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def bootstrap_auc_ci(proba: Any, labels: Any, *, n_bootstrap: int = 1000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float]:
    """Percentile CI of ROC AUC from a stratified bootstrap (resampling within each class)."""
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 10:
        raise ValueError(f"n_bootstrap must be an integer >= 10, got {n_bootstrap!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    p, y = check_predictions(proba, labels)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    y_boot = np.r_[np.ones(len(pos), dtype=int), np.zeros(len(neg), dtype=int)]
    aucs = np.empty(int(n_bootstrap))
    for b in range(int(n_bootstrap)):
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        aucs[b] = _auc(p[idx], y_boot)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(aucs, [alpha, 1.0 - alpha])
    return float(low), float(high)


def youden_threshold(proba: Any, labels: Any) -> float:
    """Probability threshold maximising Youden's J = sensitivity + specificity − 1.

    Cases with ``proba >= threshold`` are called positive; ties keep the highest threshold.
    """
    p, y = check_predictions(proba, labels)
    fpr, tpr, thresholds = roc_curve(y, p)
    finite = np.isfinite(thresholds)
    j = np.where(finite, tpr - fpr, -np.inf)
    return float(min(thresholds[int(np.argmax(j))], 1.0))


def confusion_at(proba: Any, labels: Any, threshold: float) -> dict[str, float]:
    """Counts and sensitivity / specificity / PPV / NPV calling ``proba >= threshold`` positive."""
    p, y = check_predictions(proba, labels)
    call = p >= threshold
    tp = int(np.sum(call & (y == 1)))
    fp = int(np.sum(call & (y == 0)))
    tn = int(np.sum(~call & (y == 0)))
    fn = int(np.sum(~call & (y == 1)))

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")

    return {
        "true_positive": tp, "false_positive": fp, "true_negative": tn, "false_negative": fn,
        "sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn),
    }


def brier_score(proba: Any, labels: Any) -> float:
    """Mean squared difference between probability and outcome (0 best)."""
    p, y = check_predictions(proba, labels)
    return float(np.mean((p - y) ** 2))


def calibration_slope_intercept(proba: Any, labels: Any, *, max_iter: int = 100) -> tuple[float, float]:
    """(slope, intercept) of the unpenalised logistic fit of labels on logit(clipped proba).

    Fitted by Newton–Raphson; NaN when the fit diverges (e.g. perfectly separated labels).
    """
    p, y = check_predictions(proba, labels)
    p = np.clip(p, _EPS, 1.0 - _EPS)
    x = np.log(p / (1.0 - p))
    design = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    for _ in range(max_iter):
        eta = np.clip(design @ beta, -35, 35)
        mu = 1.0 / (1.0 + np.exp(-eta))
        weights = mu * (1.0 - mu)
        hessian = design.T @ (design * weights[:, None]) + 1e-10 * np.eye(2)
        step = np.linalg.solve(hessian, design.T @ (y - mu))
        beta = beta + step
        if not np.isfinite(beta).all() or np.abs(beta).max() > 1e6:
            return float("nan"), float("nan")
        if np.abs(step).max() < 1e-10:
            break
    else:
        return float("nan"), float("nan")
    return float(beta[1]), float(beta[0])


def reliability_curve(proba: Any, labels: Any, *, n_bins: int = 10) -> ReliabilityCurve:
    """Mean predicted vs observed VPI fraction in ``n_bins`` quantile bins of ``proba``
    (bins merged when quantiles coincide; empty bins omitted)."""
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    p, y = check_predictions(proba, labels)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, int(n_bins) + 1)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    mean_pred, observed, counts = [], [], []
    for b in range(max(len(edges) - 1, 1)):
        inside = which == b
        if inside.any():
            mean_pred.append(float(p[inside].mean()))
            observed.append(float(y[inside].mean()))
            counts.append(int(inside.sum()))
    return ReliabilityCurve(tuple(mean_pred), tuple(observed), tuple(counts))


def default_dca_thresholds() -> np.ndarray:
    """Threshold probabilities 0.01, 0.02, …, 0.99."""
    return np.round(np.arange(1, 100) / 100.0, 2)


def decision_curve(proba: Any, labels: Any, *, thresholds: Optional[Sequence[float]] = None) -> DecisionCurve:
    """Net benefit of the model, treat-all and treat-none at threshold probabilities in (0, 1)."""
    p, y = check_predictions(proba, labels)
    t = default_dca_thresholds() if thresholds is None else np.asarray(thresholds, dtype=float).ravel()
    if t.size == 0 or not ((t > 0) & (t < 1)).all():
        raise ValueError("decision-curve thresholds must lie strictly between 0 and 1")
    n = len(y)
    prevalence = y.mean()
    odds = t / (1.0 - t)
    call = p[None, :] >= t[:, None]
    tp = (call & (y[None, :] == 1)).sum(axis=1)
    fp = (call & (y[None, :] == 0)).sum(axis=1)
    model = tp / n - fp / n * odds
    treat_all = prevalence - (1.0 - prevalence) * odds
    return DecisionCurve(_floats(t), _floats(model), _floats(treat_all), _floats(np.zeros_like(t)))



def binary_labels(labels: np.ndarray) -> np.ndarray:
    """Labels as int 0/1 (1 = VPI present); anything else is a ValueError saying so."""
    try:
        y_float = np.asarray(labels).astype(float)
    except (TypeError, ValueError):
        raise ValueError("labels must be 0/1 (1 = VPI present)") from None
    if not np.isin(y_float, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1 (1 = VPI present)")
    return y_float.astype(int)

def evaluate_predictions(
    proba: Any,
    labels: Any,
    *,
    threshold: float,
    threshold_method: str = "fixed (from training)",
    n_bootstrap: int = 1000,
    ci_level: float = 0.95,
    seed: int = 0,
    n_bins: int = 10,
    dca_thresholds: Optional[Sequence[float]] = None,
) -> ValidationMetrics:
    """All metrics of ``proba`` against ``labels`` at a given probability ``threshold``.

    Use the threshold chosen on training data for external validation (the default
    ``threshold_method`` records that).
    """
    if not (isinstance(threshold, (int, float, np.floating)) and 0 <= float(threshold) <= 1):
        raise ValueError(f"threshold must be a probability in [0, 1], got {threshold!r}")
    p, y = check_predictions(proba, labels)
    fpr, tpr, _ = roc_curve(y, p)
    low, high = bootstrap_auc_ci(p, y, n_bootstrap=n_bootstrap, level=ci_level, seed=seed)
    slope, intercept = calibration_slope_intercept(p, y)
    return ValidationMetrics(
        n_cases=int(len(y)),
        n_positive=int(y.sum()),
        prevalence=float(y.mean()),
        auc=_auc(p, y),
        auc_ci_low=low,
        auc_ci_high=high,
        ci_level=float(ci_level),
        n_bootstrap=int(n_bootstrap),
        threshold=float(threshold),
        threshold_method=str(threshold_method),
        **confusion_at(p, y, float(threshold)),
        brier=brier_score(p, y),
        calibration_slope=slope,
        calibration_intercept=intercept,
        roc=RocCurve(_floats(fpr), _floats(tpr)),
        reliability=reliability_curve(p, y, n_bins=n_bins),
        decision_curve=decision_curve(p, y, thresholds=dca_thresholds),
    )


# --------------------------------------------------------------------------- plots
@dataclass(frozen=True)
class _Line:
    name: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    dash: bool = False
    markers: bool = False


@dataclass(frozen=True)
class PlotSpec:
    """A backend-neutral plot: lines (or horizontal bars when ``bars``), axes and title."""

    name: str
    title: str
    x_label: str
    y_label: str
    lines: tuple[_Line, ...]
    x_range: Optional[tuple[float, float]] = None
    y_range: Optional[tuple[float, float]] = None
    bars: bool = False


MetricsArg = Union[ValidationMetrics, Mapping[str, ValidationMetrics]]


def _named(metrics: MetricsArg) -> dict[str, ValidationMetrics]:
    if isinstance(metrics, ValidationMetrics):
        return {"model": metrics}
    return dict(metrics)


def roc_spec(metrics: MetricsArg) -> PlotSpec:
    lines = [_Line(f"{name} (AUC {m.auc:.3f}, {m.ci_level:.0%} CI {m.auc_ci_low:.3f}–{m.auc_ci_high:.3f})",
                   m.roc.fpr, m.roc.tpr) for name, m in _named(metrics).items()]
    lines.append(_Line("chance", (0.0, 1.0), (0.0, 1.0), dash=True))
    return PlotSpec("roc", "ROC curve", "1 − specificity (false-positive rate)",
                    "sensitivity (true-positive rate)", tuple(lines), (0, 1), (0, 1.02))


def calibration_spec(metrics: MetricsArg) -> PlotSpec:
    lines = [_Line(f"{name} (slope {m.calibration_slope:.2f}, intercept {m.calibration_intercept:.2f}, "
                   f"Brier {m.brier:.3f})", m.reliability.mean_predicted, m.reliability.observed_fraction,
                   markers=True) for name, m in _named(metrics).items()]
    lines.append(_Line("ideal", (0.0, 1.0), (0.0, 1.0), dash=True))
    return PlotSpec("calibration", "Calibration (quantile bins)", "mean predicted VPI probability",
                    "observed VPI fraction", tuple(lines), (0, 1), (0, 1.02))


def decision_curve_spec(metrics: MetricsArg) -> PlotSpec:
    named = _named(metrics)
    lines = [_Line(name, m.decision_curve.thresholds, m.decision_curve.net_benefit_model)
             for name, m in named.items()]
    first = next(iter(named.values()))
    dc = first.decision_curve
    lines.append(_Line("treat all", dc.thresholds, dc.net_benefit_all, dash=True))
    lines.append(_Line("treat none", dc.thresholds, dc.net_benefit_none, dash=True))
    top = max(first.prevalence, max(max(m.decision_curve.net_benefit_model) for m in named.values()))
    return PlotSpec("decision_curve", "Decision curve", "threshold probability", "net benefit",
                    tuple(lines), (0, 1), (-0.05, top + 0.05))


def importance_spec(importances: Sequence[tuple[str, float]], *, top: int = 20) -> PlotSpec:
    ranked = sorted(((str(n), float(v)) for n, v in importances), key=lambda t: -t[1])[:top][::-1]
    names = tuple(n for n, _ in ranked)
    values = tuple(v for _, v in ranked)
    return PlotSpec("importance", f"Feature importance (top {len(ranked)})", "importance", "",
                    (_Line("importance", values, names),), bars=True)  # type: ignore[arg-type]


def pso_spec(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> PlotSpec:
    lines = [_Line(name, tuple(float(h["iteration"]) for h in hist), tuple(float(h["best_cv_auc"]) for h in hist),
                   markers=True) for name, hist in histories.items() if hist]
    return PlotSpec("pso", "PSO trajectory (best cross-validated AUC so far)", "iteration", "ROC AUC",
                    tuple(lines))


def to_plotly(spec: PlotSpec) -> Any:
    """Build a plotly ``Figure`` from a :class:`PlotSpec`."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for line in spec.lines:
        if spec.bars:
            fig.add_trace(go.Bar(x=list(line.x), y=list(line.y), orientation="h", name=line.name))
        else:
            mode = "lines+markers" if line.markers else "lines"
            fig.add_trace(go.Scatter(x=list(line.x), y=list(line.y), mode=mode, name=line.name,
                                     line={"dash": "dash"} if line.dash else None))
    fig.update_layout(title=spec.title, xaxis_title=spec.x_label, yaxis_title=spec.y_label,
                      template="plotly_white", legend={"orientation": "h", "y": -0.2},
                      height=max(450, 22 * len(spec.lines[0].y)) if spec.bars and spec.lines else 500)
    if spec.x_range:
        fig.update_xaxes(range=list(spec.x_range))
    if spec.y_range:
        fig.update_yaxes(range=list(spec.y_range))
    return fig


def to_matplotlib(spec: PlotSpec) -> Any:
    """Build a matplotlib ``Figure`` (Agg canvas, no pyplot global state) from a spec."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = max(4.5, 0.28 * len(spec.lines[0].y)) if spec.bars and spec.lines else 4.5
    fig = Figure(figsize=(6.5, height), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    for line in spec.lines:
        if spec.bars:
            ax.barh(list(line.y), list(line.x), color="#3b6ea8")
        else:
            ax.plot(line.x, line.y, linestyle="--" if line.dash else "-",
                    marker="o" if line.markers else None, markersize=3, label=line.name)
    ax.set_title(spec.title)
    ax.set_xlabel(spec.x_label)
    ax.set_ylabel(spec.y_label)
    if spec.x_range:
        ax.set_xlim(*spec.x_range)
    if spec.y_range:
        ax.set_ylim(*spec.y_range)
    if not spec.bars and spec.lines:
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save_plots(
    metrics: Optional[MetricsArg],
    out_dir: Union[str, Path],
    *,
    importances: Optional[Sequence[tuple[str, float]]] = None,
    pso_history: Optional[Mapping[str, Sequence[Mapping[str, Any]]]] = None,
    formats: Sequence[str] = ("html", "png"),
) -> list[Path]:
    """Write ROC, calibration, decision-curve (from ``metrics``), importance and PSO plots.

    Args:
        metrics: one :class:`ValidationMetrics` or ``{label: metrics}`` drawn together; ``None``
            skips the three metric plots.
        out_dir: created if missing.
        importances: ``[(feature, importance), …]``; top 20 drawn.
        pso_history: ``{model name: PSOForestClassifier.pso_history_}``.
        formats: any of ``"html"`` (plotly; ``plotly.min.js`` is written once beside the pages
            so they work offline) and ``"png"`` (matplotlib).

    Returns:
        Paths of the files written (HTML and PNG; not the shared ``plotly.min.js``).
    """
    unknown = set(formats) - {"html", "png"}
    if unknown:
        raise ValueError(f"formats must be 'html' and/or 'png', got {sorted(unknown)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specs: list[PlotSpec] = []
    if metrics is not None:
        specs += [roc_spec(metrics), calibration_spec(metrics), decision_curve_spec(metrics)]
    if importances:
        specs.append(importance_spec(importances))
    if pso_history and any(pso_history.values()):
        specs.append(pso_spec(pso_history))
    written: list[Path] = []
    for spec in specs:
        if "html" in formats:
            path = out / f"{spec.name}.html"
            to_plotly(spec).write_html(str(path), include_plotlyjs="directory", full_html=True)
            written.append(path)
        if "png" in formats:
            path = out / f"{spec.name}.png"
            to_matplotlib(spec).savefig(path)
            written.append(path)
    return written
