"""proxy: the Database and Collection stand-ins the managers hand out; each use resolves the cluster's current client, so one kept in a module global follows reloads and lets the replaced client close."""

# A proxy holds no driver object: only how to make its Database or
# Collection from a client (the cluster, the database name, the steps after
# it).  Every use of a driver attribute (an operation, a property) asks the
# manager for the object made from the cluster's current client (the gate
# and the reload check of get_client, then a cache lookup), so nothing the
# application keeps refers to a client that a reload or a reconnect
# replaced, and the manager's reference-count rule closes that client once
# the requests using it are done.  Deriving a collection (db.items,
# db["items"], get_collection, with_options, sub-collections, .database)
# makes another proxy without touching a client: building one at import
# time, in a gunicorn master, attaches nothing and connects nothing.

_EMPTY = {}


class _Unhashable(object):
    """Marks, in a cache key, a step argument that cannot be hashed (pymongo 3.11's WriteConcern,
    ReadPreference, CodecOptions with a TypeRegistry): it stands there by identity."""

    __slots__ = ()

    def __repr__(self):
        return "<unhashable>"


_UNHASHABLE = _Unhashable()


def _key_of(value):
    try:
        hash(value)
    except TypeError:
        # The cache entry keeps the proxy's path, hence this value, alive: no other object can
        # have its id while the entry that was keyed with it exists.
        return (_UNHASHABLE, id(value))
    return value


def _step(method, args, kwargs):
    """(the step as applied, its cache key): getattr(obj, method)(*args, **kwargs)."""
    key = (method, tuple(_key_of(a) for a in args),
           tuple((k, _key_of(kwargs[k])) for k in sorted(kwargs)))
    return (method, args, kwargs), key


def _item_step(name):
    # db.items and db["items"], the common case: no generic key to compute.
    if not isinstance(name, str):
        raise TypeError("name must be an instance of str")
    return ("__getitem__", (name,), _EMPTY), ("__getitem__", name)


class _Proxy(object):
    """What DatabaseProxy and CollectionProxy share: the recipe, its resolution, and the object
    protocol (isinstance, equality, repr, iteration and calls) answered as the driver's would."""

    __slots__ = ("_mongosup_manager", "_mongosup_cluster", "_mongosup_dbname", "_mongosup_path",
                 "_mongosup_key")
    _mongosup_kind = 0  # index into the manager's _VIEWS: 0 the database class, 1 the collection class

    def __init__(self, manager, cluster, dbname, path=(), key=None):
        self._mongosup_manager = manager
        self._mongosup_cluster = cluster
        self._mongosup_dbname = dbname  # None: the cluster's database_name, as reloaded
        self._mongosup_path = path      # steps applied after client[dbname]
        self._mongosup_key = (dbname,) if key is None else key  # the cache key of (dbname, path)

    def _mongosup_resolve(self):
        return self._mongosup_manager._resolve_proxy(self)

    def _mongosup_derive(self, cls, step_and_key, dblen=None):
        step, key = step_and_key
        child = cls(self._mongosup_manager, self._mongosup_cluster, self._mongosup_dbname,
                    self._mongosup_path + (step,), self._mongosup_key + (key,))
        if dblen is not None:
            child._mongosup_dblen = dblen
        return child

    # The driver's class, so that isinstance(db, pymongo.database.Database) holds (and Motor's
    # AsyncIOMotorDatabase for a Motor manager); type(db) stays the proxy's.
    @property
    def __class__(self):
        return self._mongosup_manager._VIEWS[self._mongosup_kind]

    def __getattr__(self, name):
        if name[:1] == "_":
            if name.startswith("_mongosup"):
                raise AttributeError(name)  # a slot not set (a copy made without __init__): no recursion
            return getattr(self._mongosup_resolve(), name)
        if name in self._mongosup_manager._VIEWS[2 + self._mongosup_kind]:
            return getattr(self._mongosup_manager._resolve_proxy(self), name)
        # A collection, or a sub-collection: pymongo's and Motor's __getattr__ rule.  The common
        # db.items made here directly: this is on the path of every db.items.insert_one(...).
        child = CollectionProxy(self._mongosup_manager, self._mongosup_cluster, self._mongosup_dbname,
                                self._mongosup_path + (("__getitem__", (name,), _EMPTY),),
                                self._mongosup_key + (("__getitem__", name),))
        child._mongosup_dblen = self._mongosup_dblen_here()
        return child

    def __getitem__(self, name):
        return self._mongosup_derive(CollectionProxy, _item_step(name), self._mongosup_dblen_here())

    def with_options(self, *args, **kwargs):
        return self._mongosup_derive(type(self), _step("with_options", args, kwargs),
                                     self._mongosup_dblen if self._mongosup_kind else None)

    def _mongosup_dblen_here(self):
        # How many steps of the path make the database of a collection taken from here.
        return self._mongosup_dblen if self._mongosup_kind else len(self._mongosup_path)

    def __eq__(self, other):
        # As the driver's objects compare (the same client and name; options are not compared),
        # with each proxy resolved first.
        return self._mongosup_resolve() == unwrap(other)

    def __ne__(self, other):
        return not self == other

    __hash__ = None  # as pymongo 3.11's and Motor 2.3's Database and Collection

    def __iter__(self):
        # Without it, __getitem__ would make iter() walk collections named 0, 1, 2, ...
        raise TypeError("'%s' object is not iterable" % self.__class__.__name__)

    def __call__(self, *args, **kwargs):
        # A misspelt method is a (sub-)collection, as with the driver's objects: the driver's
        # TypeError says so.
        return self._mongosup_resolve()(*args, **kwargs)

    def __dir__(self):
        return sorted(self._mongosup_manager._VIEWS[2 + self._mongosup_kind])

    def _mongosup_names(self):
        dblen = self._mongosup_dblen_here()
        coll = ".".join(args[0] for method, args, _ in self._mongosup_path[dblen:]
                        if method in ("__getitem__", "get_collection"))
        return self._mongosup_dbname or "<database_name>", coll


class DatabaseProxy(_Proxy):
    """A cluster's database as the manager hands it out: every use goes to the Database (Motor:
    AsyncIOMotorDatabase) of the cluster's current client.  isinstance() sees the driver's class;
    mongosup.unwrap(proxy) is the driver's object of the moment."""

    __slots__ = ()

    def get_collection(self, name, *args, **kwargs):
        if not isinstance(name, str):
            raise TypeError("name must be an instance of str")
        return self._mongosup_derive(CollectionProxy, _step("get_collection", (name,) + args, kwargs),
                                     len(self._mongosup_path))

    def __repr__(self):
        return "DatabaseProxy(cluster=%r, database=%r)" % (self._mongosup_cluster, self._mongosup_names()[0])


class CollectionProxy(_Proxy):
    """A collection of a DatabaseProxy: every use goes to the Collection (Motor:
    AsyncIOMotorCollection) of the cluster's current client."""

    __slots__ = ("_mongosup_dblen",)  # how many steps of the path make its database
    _mongosup_kind = 1

    @property
    def database(self):
        dblen = self._mongosup_dblen
        return DatabaseProxy(self._mongosup_manager, self._mongosup_cluster, self._mongosup_dbname,
                             self._mongosup_path[:dblen], self._mongosup_key[:dblen + 1])

    def __repr__(self):
        db, coll = self._mongosup_names()
        return "CollectionProxy(cluster=%r, database=%r, collection=%r)" % (self._mongosup_cluster, db, coll)


def views_of(database_class, collection_class, instance_attributes=()):
    """What a manager's proxies stand for: the two driver classes, then the names that are their
    attributes (anything else is a collection name, as the driver's __getattr__ has it).
    instance_attributes: those set on each object rather than on the class (Motor's delegate)."""
    extra = frozenset(instance_attributes)
    return (database_class, collection_class, frozenset(dir(database_class)) | extra,
            frozenset(dir(collection_class)) | extra)


def unwrap(obj):
    """The driver's Database or Collection that a proxy stands for at this moment (made from the
    cluster's current client, through the gate); anything else is returned as it is.  For a unit of
    work that must stay on one client (a session, a transaction), use what this returns."""
    if isinstance(obj, _Proxy):
        return obj._mongosup_resolve()
    return obj
