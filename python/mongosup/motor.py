"""motor: MotorConnectionManager, the same manager handing out Motor (asyncio) clients with the same listeners."""

import asyncio

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorCollection, AsyncIOMotorDatabase

from .manager import ConnectionManager
from .proxy import views_of


class MotorConnectionManager(ConnectionManager):
    """ConnectionManager for asyncio programs: AsyncIOMotorClient per cluster.

    get_client and database are synchronous (creating a client does no I/O,
    creating a proxy touches no client: `db = manager.database("users")` at
    import time); get_database and run are coroutines, so
    `db = await manager.get_database("users")` works as with the seed's
    manager.  Motor runs pymongo on its executor threads: the same listeners
    record every command and pool event.
    """

    _delegate = True  # an AsyncIOMotorClient keeps its pymongo client in .delegate
    # Motor's objects keep their pymongo object in .delegate, set on each one.
    _VIEWS = views_of(AsyncIOMotorDatabase, AsyncIOMotorCollection, ("delegate",))

    def _client_class(self):
        return AsyncIOMotorClient

    async def get_database(self, cluster, name=None):
        return self.database(cluster, name)

    async def run(self, cluster, fn):
        """await fn(database) with mongosup_run's retry policy (see ConnectionManager.run)."""
        attempts = None
        while True:
            db = self._database_now(cluster)  # one client for the attempt
            attempts = attempts or self._attempts(cluster)
            attempts.begin()
            try:
                return await fn(db)
            except Exception as exc:
                pause = attempts.pause_after(exc)
                if pause is None:
                    raise
            await asyncio.sleep(pause)
