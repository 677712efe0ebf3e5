# lib/worker.mk: sources of the worker side of libmongosup (attach, pools, APM).
LIB_WORKER_SOURCES = \
	lib/worker.h lib/worker.c lib/worker_fork.c lib/worker_reload.c lib/worker_reattach.c lib/worker_trust.c \
	lib/checkout.c \
	lib/pool.c \
	lib/budget.h lib/budget.c \
	lib/clientmap.h lib/clientmap.c \
	lib/apm.c \
	lib/record.h lib/record.c \
	lib/neutral.c \
	lib/cutoff.h lib/cutoff.c \
	lib/failfast.h lib/failfast.c \
	lib/monwatch.h lib/monwatch.c \
	lib/probe.h lib/probe.c \
	lib/classify.h lib/classify.c \
	lib/registry.c \
	lib/run.c
