"""Draw the deploy benchmark's chart (matplotlib, installed in the benchmark's venv only)."""

from __future__ import annotations

from typing import Any

__all__ = ["draw"]


def draw(results: dict[str, Any], path: str) -> None:
    """Write a PNG: requests/s and p99 per configuration, and requests/s against workers."""
    import os
    from statistics import median

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    configs = [r["config"] for r in runs[0]]
    labels = [f"{r['config']}\n({r['stale']} stale pages)" if r.get("stale") else r["config"] for r in runs[0]]
    rps = [[run[i]["rps"] for run in runs] for i in range(len(configs))]
    p99 = [[run[i]["p99"] for run in runs] for i in range(len(configs))]
    colors = ["#999999" if c in ("none", "cache_page") else "#d08030" if c in ("cachalot", "cacheops")
              else "#2a6fb0" for c in configs]
    curve = results.get("workers_curve") or []
    fig, axes = plt.subplots(1, 3 if curve else 2, figsize=(15 if curve else 11, 4.6))
    mid = [median(v) for v in rps]
    axes[0].barh(labels, mid, color=colors)
    for i, v in enumerate(rps):
        if len(v) > 1:
            axes[0].plot([min(v), max(v)], [i, i], color="black", linewidth=1)
        axes[0].text(mid[i], i, f" {mid[i]:.0f}", va="center", fontsize=8)
    axes[0].invert_yaxis()
    axes[0].set_xlabel("requests/s (higher is better)")
    axes[0].set_title(f"{results['workers']} gunicorn workers, PostgreSQL, 5% edits")
    mid99 = [median(v) for v in p99]
    axes[1].barh(labels, mid99, color=colors)
    for i, v in enumerate(mid99):
        axes[1].text(v, i, f" {v:.0f}", va="center", fontsize=8)
    axes[1].invert_yaxis()
    axes[1].set_yticklabels([])
    axes[1].set_xlabel("p99 latency of page reads, ms (lower is better)")
    axes[1].set_title("tail latency")
    if curve:
        w = [p["workers"] for p in curve]
        axes[2].plot(w, [p["rps"] for p in curve], "o-", color="#2a6fb0", label="cachedeps (memcached)")
        axes[2].plot(w, [p["none_rps"] for p in curve], "o-", color="#999999", label="no cache")
        axes[2].set_xscale("log", base=2)
        axes[2].set_xticks(w, [str(x) for x in w])
        axes[2].set_xlabel("gunicorn workers (2 CPU cores)")
        axes[2].set_ylabel("requests/s")
        axes[2].set_title("workers")
        axes[2].legend(fontsize=8)
    fig.text(0.01, 0.01, "2 shared CPU cores running the site, the databases, the caches and wrk; "
             f"figures are noisy (bars: median of {len(runs)} run(s), lines: range)", fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
