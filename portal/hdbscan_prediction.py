"""HDBSCAN prediction data that agrees with the fitted labels.

hdbscan 0.8.44 builds its prediction data (used by ``approximate_predict`` and the membership
functions) from ``CondensedTree._select_clusters``, which takes, for each label, the *lowest-numbered
node its points fall out of*. When every point of a selected cluster leaves the tree in that
cluster's sub-clusters (none drops out of the cluster itself before it splits), that node is a
sub-cluster, not the selected cluster: the prediction data then numbers the clusters differently from
``labels_`` and predicts noise for part of the segment. On the bundled sample this placed 92% of the
training rows in another segment than the one they were fitted into.

Here each label's cluster is the lowest common ancestor of the nodes its points fall out of, which
is the cluster HDBSCAN selected, and the prediction data is built from that selection.
"""

from __future__ import annotations

import numpy as np


def selected_clusters(condensed_tree: np.ndarray, labels: np.ndarray) -> list[int]:
    """Condensed-tree node of each label 0..k-1 (the cluster HDBSCAN selected for it)."""
    clusters = condensed_tree[condensed_tree["child_size"] > 1]
    parent_of = dict(zip(clusters["child"].tolist(), clusters["parent"].tolist()))
    points = condensed_tree[condensed_tree["child_size"] == 1]
    point_labels = labels[points["child"]]

    def path_to_root(node: int) -> list[int]:
        path = [node]
        while path[-1] in parent_of:
            path.append(parent_of[path[-1]])
        return path

    selected = []
    for label in range(int(labels.max()) + 1):
        paths = [path_to_root(int(node)) for node in np.unique(points["parent"][point_labels == label])]
        common = set(paths[0]).intersection(*paths[1:])
        selected.append(next(node for node in paths[0] if node in common))
    return selected


def attach_prediction_data(clusterer: object, min_samples: int) -> None:
    """Give a fitted ``hdbscan.HDBSCAN`` (fitted without ``prediction_data``) prediction data built
    from the clusters its labels came from."""
    from hdbscan.plots import CondensedTree
    from hdbscan.prediction import PredictionData

    raw_tree = clusterer._condensed_tree
    selection = selected_clusters(raw_tree, clusterer.labels_)

    class _Selected(CondensedTree):
        def _select_clusters(self) -> list[int]:
            return list(selection)

    clusterer.prediction_data_ = PredictionData(clusterer._raw_data, _Selected(raw_tree, clusterer.labels_),
                                                min_samples, tree_type="kdtree", metric=clusterer.metric)
