"""The bottom layer: helpers that know nothing of models, data or training (atomic files, process
ranks, rank-zero logging, what Hydra says about this job, one-line entry points, typed config checks)."""
