"""Event Trail: record what users do on a Django site and ship it to ELK or an embedded store."""

__all__: list[str] = []
