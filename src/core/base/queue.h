/* queue.h: a bounded queue of pointers between threads: producers never wait (a full queue
 * refuses, so a flood of work is dropped and counted rather than piled up), consumers wait
 * until there is work or the queue is closed. */
#ifndef VS_QUEUE_H
#define VS_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

struct vs_queue;
struct vs_queue *vs_queue_new(size_t capacity);
/* Frees the queue; items still in it are passed to FREE_ITEM (may be NULL). */
void vs_queue_free(struct vs_queue *q, void (*free_item)(void *));
/* Adds ITEM unless the queue is full or closed: returns false then (ITEM stays the caller's). */
bool vs_queue_push(struct vs_queue *q, void *item);
/* The oldest item; waits for one. NULL once the queue is closed and empty. */
void *vs_queue_pop(struct vs_queue *q);
/* No more pushes; waiting consumers take what is left, then get NULL. */
void vs_queue_close(struct vs_queue *q);
size_t vs_queue_length(struct vs_queue *q);

#endif
