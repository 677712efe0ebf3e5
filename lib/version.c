/* version.c: the library's version string, from configure. */
#include "build-config.h"
#include "mongosup.h"

const char *mongosup_version(void)
{
    return PACKAGE_VERSION;
}
