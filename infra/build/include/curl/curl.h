/* Intentionally empty.
 *
 * librdkafka's CMake build (used for the arm64 Lambda build, see shared/Cargo.toml) writes
 * `#define WITH_OAUTHBEARER_OIDC 0` into its config.h, and src/rdkafka_conf.c tests it with
 * `#ifdef`, so it includes <curl/curl.h> although nothing of curl is used (the OIDC code is
 * not compiled). Cross-compiling, there are no curl headers for the target: this one stands in.
 * `make build` and `make sam-build` put a copy of this directory on C_INCLUDE_PATH.
 */
