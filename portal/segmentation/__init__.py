"""Segmentation: customer rows → features → UMAP → HDBSCAN → segments and personas, and model releases."""
