"""Every job of hybrid, one module each, each run by the same entry: ``main(argv, prog) -> exit
code`` (:mod:`hybrid.commands` lists them; ``hybrid <job>``, ``python -m hybrid.jobs.<job>``). A
Hydra job declares ``main = HydraJob(config_name, task)`` (:mod:`~hybrid.jobs.app`); the jobs' own
keys live in :mod:`~hybrid.jobs.schema`. ``serve`` and ``survey`` take flags (argparse) and import
nothing of the training stack."""
