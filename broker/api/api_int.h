/*
 * What the API's files share (not part of the broker's public face).
 */
#ifndef SBX_API_INT_H
#define SBX_API_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sbx_proto.h"

/* A reply frame as JSON: its fields by name (api_json.c), *status its
 * STATUS.  NULL when out of memory. */
json_t *sbx_api_reply_json(const uint8_t *frame, size_t n, uint32_t *status);

#endif
