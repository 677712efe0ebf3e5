/* fleet_record_test.c: a host's fleet record (encode, strict decode of corrupt and foreign records) and the base64 of etcd's gateway. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fleet/base64.h"
#include "../fleet/record.h"
#include "testmain.h"

static void test_base64(void)
{
    const char *cases[][2] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
                              {"/mongosup/fleet/", "L21vbmdvc3VwL2ZsZWV0Lw=="}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char enc[64], dec[64];
        size_t len = 99;
        msup_b64_encode(cases[i][0], strlen(cases[i][0]), enc);
        CU_ASSERT_STRING_EQUAL(enc, cases[i][1]);
        CU_ASSERT(msup_b64_decode(cases[i][1], dec, sizeof dec - 1, &len));
        CU_ASSERT_EQUAL(len, strlen(cases[i][0]));
        CU_ASSERT_STRING_EQUAL(dec, cases[i][0]);
    }
    char out[8];
    size_t len;
    CU_ASSERT_FALSE(msup_b64_decode("Zm9", out, 7, &len));       /* not a multiple of 4 */
    CU_ASSERT_FALSE(msup_b64_decode("Zm=v", out, 7, &len));      /* padding inside */
    CU_ASSERT_FALSE(msup_b64_decode("Zg==Zg==", out, 7, &len));  /* padding before the end */
    CU_ASSERT_FALSE(msup_b64_decode("Z!9v", out, 7, &len));      /* outside the alphabet */
    CU_ASSERT_FALSE(msup_b64_decode("Zm9vYmFyYmF6", out, 7, &len)); /* 9 bytes into 7 */
    CU_ASSERT(msup_b64_decode("Zm9vYmFy", out, 7, &len));
    CU_ASSERT_STRING_EQUAL(out, "foobar");
}

static void test_record_round_trip(void)
{
    msup_fleet_record_t r = {.host = "web-1.dc2", .floor = 4, .demand = 17, .cap = 12, .fleet_max = 40, .max_hosts = 4};
    char text[512], why[128] = "";
    CU_ASSERT(msup_fleet_record_encode(&r, text, sizeof text));
    msup_fleet_record_t back;
    CU_ASSERT(msup_fleet_record_decode(text, "web-1.dc2", &back, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(back.host, "web-1.dc2");
    CU_ASSERT_EQUAL(back.floor, 4);
    CU_ASSERT_EQUAL(back.demand, 17);
    CU_ASSERT_EQUAL(back.cap, 12);
    CU_ASSERT_EQUAL(back.fleet_max, 40);
    CU_ASSERT_EQUAL(back.max_hosts, 4);
    CU_ASSERT_FALSE(msup_fleet_record_encode(&r, text, 20)); /* does not fit */
}

static void test_record_rejects(void)
{
    struct {
        const char *text, *why;
    } bad[] = {
        {"", "not a JSON object"},
        {"{not json", "not a JSON object"},
        {"[1,2]", "not a JSON object"},
        {"{\"host\":\"a\"}", "no integer \"v\""},
        {"{\"v\":2,\"host\":\"a\"}", "record version 2"},
        {"{\"v\":1,\"host\":\"b\",\"floor\":1,\"demand\":1,\"cap\":1,\"fleet_max\":9,\"max_hosts\":1}",
         "its host does not match its key"},
        {"{\"v\":1,\"host\":\"a\",\"floor\":1,\"demand\":1,\"cap\":\"1\",\"fleet_max\":9,\"max_hosts\":1}",
         "no integer \"cap\""},
        {"{\"v\":1,\"host\":\"a\",\"floor\":1,\"demand\":-1,\"cap\":1,\"fleet_max\":9,\"max_hosts\":1}",
         "\"demand\" -1 is out of range"},
        {"{\"v\":1,\"host\":\"a\",\"floor\":1,\"demand\":1,\"cap\":10,\"fleet_max\":9,\"max_hosts\":1}",
         "cap 10 is above its fleet_max 9"},
        {"{\"v\":1,\"host\":\"a\",\"floor\":1,\"demand\":1,\"cap\":1,\"fleet_max\":99999999999,\"max_hosts\":1}",
         "out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        msup_fleet_record_t r;
        char why[128] = "";
        CU_ASSERT_FALSE(msup_fleet_record_decode(bad[i].text, "a", &r, why, sizeof why));
        CU_ASSERT(strstr(why, bad[i].why) != NULL);
        if (strstr(why, bad[i].why) == NULL)
            fprintf(stderr, "\n  case %zu: expected \"%s\", got \"%s\"\n", i, bad[i].why, why);
    }
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/fleet/base64", test_base64},
        {"/fleet/record/round-trip", test_record_round_trip},
        {"/fleet/record/rejects", test_record_rejects},
        {NULL, NULL},
    };
    return msup_test_main("fleet_record", tests, argc, argv);
}
