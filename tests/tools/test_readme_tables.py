"""The README's generated tables (supported layers, skeletons) must match the code."""

from posebridge.tools import readme_tables


def test_readme_tables_are_fresh():
    current = readme_tables.README.read_text(encoding="utf-8")
    assert readme_tables.render(current) == current, (
        "README tables are stale: run python -m posebridge.tools.readme_tables")


def test_supported_layers_table_lists_every_registered_type():
    from posebridge.converter.registry import supported_types

    table = readme_tables.supported_layers_table()
    for name in supported_types():
        assert f"| `{name}` |" in table
