# etc/local.mk: build rules for etc/.
