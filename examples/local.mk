# examples/local.mk: build rules for examples/.
