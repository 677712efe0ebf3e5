# docs/local.mk: build rules for docs/.
