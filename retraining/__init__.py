"""Quarterly retraining: the job (fit, validate, swap), its run lock and status, and the scheduler."""
