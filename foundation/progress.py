"""One line when a long step starts and one when it ends, with its time: what `train`, `export` and
`report-export` print, so a user watching a minutes-long step sees what it is doing."""

import contextlib
import time


@contextlib.contextmanager
def step(what: str, echo=print):
    echo(f"{what} ...")
    start = time.time()
    yield
    echo(f"{what}: done in {time.time() - start:.1f} s")
