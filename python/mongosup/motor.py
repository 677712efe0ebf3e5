"""motor: MotorConnectionManager, the same manager handing out Motor (asyncio) clients with the same listeners."""

import asyncio

from .manager import ConnectionManager


class MotorConnectionManager(ConnectionManager):
    """ConnectionManager for asyncio programs: AsyncIOMotorClient per cluster.

    get_client is synchronous (creating a client does no I/O); get_database
    and run are coroutines, so `db = await manager.get_database("users")`
    works as with the seed's manager.  Motor runs pymongo on its executor
    threads: the same listeners record every command and pool event.
    """

    _delegate = True  # an AsyncIOMotorClient keeps its pymongo client in .delegate

    def _client_class(self):
        from motor.motor_asyncio import AsyncIOMotorClient
        return AsyncIOMotorClient

    async def get_database(self, cluster, name=None):
        return ConnectionManager.get_database(self, cluster, name)

    async def run(self, cluster, fn):
        """await fn(database) with mongosup_run's retry policy (see ConnectionManager.run)."""
        attempts = None
        while True:
            db = ConnectionManager.get_database(self, cluster)
            attempts = attempts or self._attempts(cluster)
            attempts.begin()
            try:
                return await fn(db)
            except Exception as exc:
                pause = attempts.pause_after(exc)
                if pause is None:
                    raise
            await asyncio.sleep(pause)
