"""poolstate: what a pymongo (or Motor) client's own pools hold, for the tests to compare with the segment's gauges."""

import pymongo


def open_connections(client):
    """The connections open in the client's pools (idle and checked out; the monitors' are not
    pool connections), read from pymongo 3.11's Pool."""
    # Motor keeps the pymongo client in .delegate (a MongoClient's .delegate is a database).
    driver = client if isinstance(client, pymongo.MongoClient) else client.delegate
    return sum(len(server.pool.sockets) + server.pool.active_sockets
               for server in list(driver._topology._servers.values()))
