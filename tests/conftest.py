"""Shared fixtures: the public data beside the checkout, and one tiny trained run + export per app,
built once per test session (tiny presets: seconds, not minutes)."""

from pathlib import Path

import pytest

from rnn_apps import registry
from rnn_apps.train import train

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO.parent / "shared" / "data"

@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA_ROOT / "sst2").is_dir():
        pytest.fail(f"public data missing: expected {DATA_ROOT} (../shared/data beside the checkout)")
    return DATA_ROOT


@pytest.fixture(scope="session")
def train_tiny(data_root):
    """train_tiny(app_name, out_dir, **overrides) -> Run: the app's `tiny` preset on its local data
    (the first of its default_data)."""

    def run(name, out, **overrides):
        app = registry.get(name)
        return train(app, app.resolve_config("tiny", overrides), app.default_data[0], data_root, out, {},
                     echo=lambda *_: None)

    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, train_tiny):
    """tiny_run(app_name) -> Run, trained once per session with the app's `tiny` preset."""
    runs = {}

    def get(name):
        if name not in runs:
            runs[name] = train_tiny(name, tmp_path_factory.mktemp(f"run_{name}"))
        return runs[name]

    return get


@pytest.fixture(scope="session")
def tiny_ensemble(tmp_path_factory, train_tiny):
    """tiny_ensemble(app_name) -> Run: the `tiny` preset as an ensemble of two members, trained once
    per session (tests that change a run copy its folder first)."""
    runs = {}

    def get(name):
        if name not in runs:
            runs[name] = train_tiny(name, tmp_path_factory.mktemp(f"ensemble_{name}") / "run", members=2)
        return runs[name]

    return get


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, tiny_run):
    """tiny_export(app_name) -> (export root, manifest entry), exported once per session."""
    from export import exporter

    exports = {}

    def get(name):
        if name not in exports:
            root = tmp_path_factory.mktemp(f"export_{name}")
            exports[name] = root, exporter.export_run(tiny_run(name), root, echo=lambda *_: None)
        return exports[name]

    return get


# Fixtures that train or export a tiny run: a test using one is slow (seconds to a minute); the rest
# is the fast subset, `pytest -m "not slow"`.
TRAINING_FIXTURES = {"train_tiny", "tiny_run", "tiny_ensemble", "tiny_export"}


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
