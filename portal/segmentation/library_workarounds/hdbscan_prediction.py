"""HDBSCAN whose prediction functions agree with its fitted labels.

hdbscan 0.8.44 finds "the selected clusters" for its prediction data (``approximate_predict``) and for
``membership_vector`` / ``all_points_membership_vectors`` with ``CondensedTree._select_clusters``,
which takes, for each label, the *lowest-numbered node its points fall out of*. When every point of a
selected cluster leaves the tree in that cluster's sub-clusters (none drops out of the cluster itself
before it splits), that node is a sub-cluster, not the selected cluster: predictions then number the
segments differently from ``labels_``, call part of a segment noise, and membership vectors measure
against the wrong node. On the bundled sample this placed 92% of the training rows in another segment
than the one they were fitted into.

Here each label's cluster is the lowest common ancestor of the nodes its points fall out of, which is
the cluster HDBSCAN selected, and ``LabelledHDBSCAN.condensed_tree_`` answers with that selection, so
every prediction function (and ``prediction_data=True``) uses it.
"""

from __future__ import annotations

import numpy as np
from hdbscan import HDBSCAN
from hdbscan.plots import CondensedTree


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


class SelectedClustersTree(CondensedTree):
    """A condensed tree whose selected clusters are the ones the labels came from."""

    def _select_clusters(self) -> list[int]:
        return selected_clusters(self._raw_tree, self._labels)


class LabelledHDBSCAN(HDBSCAN):
    """``hdbscan.HDBSCAN`` with prediction data and membership vectors numbered like ``labels_``."""

    @property
    def condensed_tree_(self) -> SelectedClustersTree:
        if self._condensed_tree is None:
            raise AttributeError("No condensed tree was generated; try running fit first.")
        return SelectedClustersTree(self._condensed_tree, self.labels_)

    @condensed_tree_.setter
    def condensed_tree_(self, value: np.ndarray) -> None:
        self._condensed_tree = value
