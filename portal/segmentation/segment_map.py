"""A PNG map of the training customers in 2-D, coloured by segment, saved with each release."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def draw_segment_map(embedding: np.ndarray, labels: np.ndarray, personas: dict[int, dict], out: Path) -> None:
    """Project the UMAP embedding to 2-D (PCA, cheap and deterministic) and draw one colour per segment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    points = embedding if embedding.shape[1] == 2 else PCA(n_components=2, random_state=0).fit_transform(embedding)
    fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    noise = labels < 0
    if noise.any():
        ax.scatter(points[noise, 0], points[noise, 1], s=3, c="#cccccc", label="unassigned", alpha=0.5)
    cmap = plt.get_cmap("tab20")
    for i, cluster_id in enumerate(sorted(set(labels.tolist()) - {-1})):
        mask = labels == cluster_id
        name = personas.get(cluster_id, {}).get("name", f"Segment {cluster_id}")
        ax.scatter(points[mask, 0], points[mask, 1], s=4, color=cmap(i % 20), label=f"{cluster_id}: {name}")
    ax.set_title("Customer segments (training customers, 2-D projection)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best", fontsize=7, markerscale=3, frameon=False)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)
