// checksum: a Parade actor in C, built with clang and wasi-libc, then adapted into a
// component (see scripts/build-guests.sh).
//
// Reports the CRC-32 (the zlib/PNG polynomial), byte count and line count of the task's
// body, the kind of integrity check a file-processing pipeline runs on each file.
#include <stdio.h>
#include <stdlib.h>

#include "actor.h"

static uint32_t crc32(const uint8_t *data, size_t len) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; i++) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; bit++)
      crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void exports_actor_actions(actor_list_string_t *ret) {
  ret->len = 1;
  ret->ptr = malloc(sizeof(actor_string_t));
  actor_string_dup(&ret->ptr[0], "checksum");
}

// The arguments belong to the callee; the result is freed by the generated post-return.
void exports_actor_handle(actor_string_t *action, actor_string_t *maybe_body,
                          uint32_t signalled_failures, actor_actor_result_t *ret) {
  (void)signalled_failures;
  const uint8_t *data = maybe_body ? maybe_body->ptr : (const uint8_t *)"";
  size_t len = maybe_body ? maybe_body->len : 0;
  size_t lines = 0;
  for (size_t i = 0; i < len; i++)
    lines += data[i] == '\n';

  actor_string_t id;
  parade_actor_host_task_id(&id);
  char status[128];
  snprintf(status, sizeof status, "crc32=%08x bytes=%zu lines=%zu", crc32(data, len), len,
           lines);
  // Anything written to stdout reaches the node's log, tagged with the task.
  printf("task %.*s: %s\n", (int)id.len, (const char *)id.ptr, status);
  actor_string_free(&id);

  actor_string_dup(&ret->status, status);
  ret->code = PARADE_ACTOR_TYPES_STATUS_CODE_COMPLETED;
  // Every field of the result must be set: a retry delay only means something for pending.
  ret->retry_after_ms.is_some = false;
  actor_string_free(action);
  if (maybe_body)
    actor_string_free(maybe_body);
}
