"""Opening a current store does not import Alembic (workstation launch, issue 11), and the
revision chain read from the version files is Alembic's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from busviewer.core.store import Store
from busviewer.core.store.migrate import head, known_revisions, scripts


def test_revision_chain_read_from_the_files_is_alembics() -> None:
    ours = known_revisions()
    assert ours == tuple(s.revision for s in reversed(list(scripts().walk_revisions())))
    assert head() == scripts().get_current_head() == ours[-1]


def test_opening_a_current_store_does_not_import_alembic(tmp_path: Path) -> None:
    Store(tmp_path / "s.sqlite").close()  # created (and stamped) here
    code = (
        "import sys; from busviewer.core.store import Store; "
        f"s = Store({str(tmp_path / 's.sqlite')!r}); print(s.counts()['images'], 'alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["0", "False"]
