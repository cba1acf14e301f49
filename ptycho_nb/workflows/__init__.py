"""Workflows: training, inference, comparison and the model archive."""
