"""Storage: per-dialect drivers and SQL, numbered migrations, and the shared Store logic."""

from . import hints as hints
from ._db import Database as Database
from ._db import NativeSession as NativeSession
from ._db import Row as Row
from ._db import Session as Session
from ._db import Statement as Statement
from ._db import Tx as Tx
from ._db import WorkerSession as WorkerSession
from ._open import DEFAULT_URL as DEFAULT_URL
from ._open import check_url as check_url
from ._open import open_store as open_store
from ._placeholders import PlaceholderError as PlaceholderError
from ._schema import qualify as qualify
from ._session import PortableSession as PortableSession
from ._sqlite import SqliteDatabase as SqliteDatabase
from ._store import Store as Store
from ._types import Claimed as Claimed
from ._types import Existing as Existing
from ._types import InstanceInfo as InstanceInfo
from ._types import Lease as Lease
from ._types import RunInfo as RunInfo
from ._types import Topics as Topics
from ._types import WorkflowStatus as WorkflowStatus
from ._waits import Found as Found
from ._waits import WaitStore as WaitStore
