"""Evaluation outputs: per-case CSV, the per-organ table with Wilcoxon tests (the paper's Table 1 layout) as
CSV and markdown, and a box plot of Dice and NSD per organ (the paper's Figure 6)."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from organseg.atomic import atomic_file
from organseg.catalogue import organ
from organseg.evaluation.compare import POST, RAW, paired
from organseg.evaluation.flag_rates import flag_table
from organseg.evaluation.metrics import OrganMetrics

METRICS = tuple(OrganMetrics.__dataclass_fields__)
#: Metrics of the summary table: (field, heading, format).
TABLE = (("dice", "Dice", ".3f"), ("jaccard", "Jaccard", ".3f"), ("nsd", "NSD", ".3f"), ("hd95_mm", "HD95 mm", ".1f"),
         ("volume_diff_pct", "ΔV %", ".1f"))
FILES = ("metrics.csv", "summary.csv", "evaluation.md", "boxplot.png")


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def _csv_bytes(rows: list[dict], fields: list[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _mean_sd(values: list[float], fmt: str) -> str:
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return "–"
    mean = format(float(np.mean(finite)), fmt)
    return f"{mean} ± {format(float(np.std(finite, ddof=1)), fmt)}" if len(finite) > 1 else mean


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> tuple[float, str]:
    """Two-sided Wilcoxon signed-rank p of paired values, or NaN with the reason."""
    from scipy.stats import wilcoxon
    if len(a) < 2:
        return math.nan, f"n={len(a)}"
    if np.allclose(a, b):
        return math.nan, "no difference"
    return float(wilcoxon(b, a).pvalue), ""


def summary_rows(rows: list[dict]) -> list[dict]:
    """Per organ and metric: n, mean/SD of each variant and, with raw and post variants, the Wilcoxon p."""
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    out = []
    for key in dict.fromkeys(r["organ"] for r in rows):
        for field, _, _ in TABLE:
            row: dict = {"organ": key, "metric": field}
            for v in variants:
                values = [r[field] for r in rows if r["organ"] == key and r["variant"] == v]
                finite = [x for x in values if np.isfinite(x)]
                row[f"{v}_n"] = len(finite)
                row[f"{v}_mean"] = float(np.mean(finite)) if finite else math.nan
                row[f"{v}_sd"] = float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan
            if RAW in variants and POST in variants:
                row["wilcoxon_p"], row["wilcoxon_note"] = wilcoxon_p(*paired(rows, key, field))
            out.append(row)
    return out


def markdown(rows: list[dict], summary: list[dict], title: str, notes: list[str]) -> str:
    """Per-organ table (variants side by side with the Wilcoxon p) and the per-case table."""
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    tested = RAW in variants and POST in variants
    label = {RAW: "no PP", POST: "PP"}
    head = ["Organ", "n"]
    for _, name, _ in TABLE:
        head += [f"{name} {label.get(v, v)}" for v in variants] + (["p"] if tested else [])
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in dict.fromkeys(r["organ"] for r in rows):
        cells = [organ(key).display_name, str(len({r["case"] for r in rows if r["organ"] == key}))]
        for field, _, fmt in TABLE:
            cells += [_mean_sd([r[field] for r in rows if r["organ"] == key and r["variant"] == v], fmt)
                      for v in variants]
            if tested:
                s = next(x for x in summary if x["organ"] == key and x["metric"] == field)
                p = s["wilcoxon_p"]
                cells.append(f"{p:.3g}" if np.isfinite(p) else f"n/a ({s['wilcoxon_note']})")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Mean ± SD over cases; PP = post-processing; p = two-sided Wilcoxon signed-rank test of PP vs "
              "no PP (scipy.stats.wilcoxon). Jaccard: intersection over union; NSD: normalised surface distance at "
              "the tolerance below; HD95: "
              "95th percentile Hausdorff distance; ΔV: volume difference relative to the reference.", "",
              "## Per case", "",
              "| Case | Organ | Variant | Dice | Jaccard | NSD | HD95 mm | V pred mL | V ref mL | ΔV mL |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['case']} | {r['organ']} | {r['variant']} | {r['dice']:.4f} | {r['jaccard']:.4f} | "
                     f"{r['nsd']:.4f} | {r['hd95_mm']:.2f} | {r['volume_pred_ml']:.1f} | {r['volume_ref_ml']:.1f} | "
                     f"{r['volume_diff_ml']:+.1f} |")
    return "\n".join(lines + [""] + flag_table(rows) + [f"- {n}" for n in notes]) + "\n"


def boxplot_png(rows: list[dict]) -> bytes:
    """Box plots of Dice and NSD per organ, one box per variant (PNG bytes)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    organs = list(dict.fromkeys(r["organ"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 1.2 * len(organs) * len(variants)), 7), sharex=True)
    width = 0.8 / len(variants)
    for ax, field, name in zip(axes, ("dice", "nsd"), ("Dice", "NSD")):
        for i, v in enumerate(variants):
            data = [[r[field] for r in rows if r["organ"] == o and r["variant"] == v and np.isfinite(r[field])]
                    for o in organs]
            positions = np.arange(len(organs)) + (i - (len(variants) - 1) / 2) * width
            box = ax.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True,
                             medianprops={"color": "black"}, showfliers=False)
            for patch in box["boxes"]:
                patch.set_facecolor(f"C{i}")
                patch.set_alpha(0.6)
            for x, values in zip(positions, data):  # every case as a dot (few cases: boxes alone mislead)
                ax.scatter(np.full(len(values), x), values, s=12, color=f"C{i}", edgecolor="black", zorder=3)
            ax.plot([], [], color=f"C{i}", linewidth=8, label={RAW: "no post-processing",
                                                                 POST: "post-processing"}.get(v, v))
        ax.set_ylabel(name)
        ax.set_ylim(0, 1.02)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="lower right")
    axes[1].set_xticks(np.arange(len(organs)), [organ(o).display_name for o in organs], rotation=30, ha="right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def write_report(rows: list[dict], outdir: Path, title: str, notes: list[str]) -> dict[str, Path]:
    """Write metrics.csv, summary.csv, evaluation.md and boxplot.png into `outdir` (each atomically)."""
    outdir.mkdir(parents=True, exist_ok=True)
    summary = summary_rows(rows)
    fields = sorted({k for s in summary for k in s}, key=lambda k: (k not in ("organ", "metric"), k))
    contents = {"metrics.csv": _csv_bytes(rows, ["case", "organ", "variant", *METRICS, "flags"]),
                "summary.csv": _csv_bytes(summary, fields),
                "evaluation.md": markdown(rows, summary, title, notes).encode(),
                "boxplot.png": boxplot_png(rows)}
    for name, data in contents.items():
        _atomic_write(outdir / name, data)
    return {name: outdir / name for name in contents}
