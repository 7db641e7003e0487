"""The engine shared by train.py and infer.py: loop, evaluation, checkpoints, optimizer, outputs."""
