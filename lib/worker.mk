# lib/worker.mk: sources of the worker side of libmongosup (attach, pools, APM).
LIB_WORKER_SOURCES =
