"""The Hydra configs (YAML only): a package so that an installed hybrid finds them as
``pkg://hybrid.conf`` (``hybrid/conf`` links here), whatever directory a job runs in."""
