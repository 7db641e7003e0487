"""The README's configuration tree is the one in conf/: every config file, group and option."""

from __future__ import annotations

import re

from tests.conftest import CONF, ROOT


def configuration_tree() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"```\nconf/\n(.*?)```", text, re.S)
    assert found, "README.md has no conf/ tree"
    return found.group(1)


def test_the_configuration_tree_lists_every_config_file_group_and_option():
    tree = configuration_tree()
    named = set(re.findall(r"[\w-]+", tree))
    missing = [p.name for p in CONF.glob("*.yaml") if p.name not in tree]
    for group in (p for p in CONF.iterdir() if p.is_dir()):
        missing += [f"{group.name}/"] if f"{group.name}/" not in tree else []
        missing += [f"{group.name}/{o.stem}" for o in group.rglob("*.yaml") if o.stem not in named]
    assert not missing, f"README's configuration tree lacks {missing}"
