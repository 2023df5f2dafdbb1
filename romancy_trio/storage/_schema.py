"""Schema-qualified statements on PostgreSQL: the convention lives in ``romancy_channels._sql``.

Every PostgreSQL statement of the library writes ``{schema}.table`` (and ``{schema}.function``);
`qualify` fills in the quoted schema once per store. See that module's docstring.
"""

from __future__ import annotations

from romancy_channels import SCHEMA_TOKEN as SCHEMA_TOKEN
from romancy_channels import qualify as qualify
from romancy_channels import quote_identifier as quote_identifier
