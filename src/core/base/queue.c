#include "queue.h"

#include "util.h"

#include <pthread.h>
#include <stdlib.h>

struct vs_queue {
  pthread_mutex_t lock;
  pthread_cond_t ready;
  void **items;
  size_t cap, head, len;
  bool closed;
};

struct vs_queue *vs_queue_new(size_t capacity) {
  struct vs_queue *q = vs_xcalloc(1, sizeof(*q));
  q->cap = capacity ? capacity : 1;
  q->items = vs_xcalloc(q->cap, sizeof(void *));
  pthread_mutex_init(&q->lock, NULL);
  pthread_cond_init(&q->ready, NULL);
  return q;
}

void vs_queue_free(struct vs_queue *q, void (*free_item)(void *)) {
  if (!q) return;
  for (size_t i = 0; i < q->len; i++)
    if (free_item) free_item(q->items[(q->head + i) % q->cap]);
  pthread_mutex_destroy(&q->lock);
  pthread_cond_destroy(&q->ready);
  free(q->items);
  free(q);
}

bool vs_queue_push(struct vs_queue *q, void *item) {
  pthread_mutex_lock(&q->lock);
  bool ok = !q->closed && q->len < q->cap;
  if (ok) {
    q->items[(q->head + q->len++) % q->cap] = item;
    pthread_cond_signal(&q->ready);
  }
  pthread_mutex_unlock(&q->lock);
  return ok;
}

void *vs_queue_pop(struct vs_queue *q) {
  pthread_mutex_lock(&q->lock);
  while (q->len == 0 && !q->closed)
    pthread_cond_wait(&q->ready, &q->lock);
  void *item = NULL;
  if (q->len) {
    item = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
  }
  pthread_mutex_unlock(&q->lock);
  return item;
}

void vs_queue_close(struct vs_queue *q) {
  pthread_mutex_lock(&q->lock);
  q->closed = true;
  pthread_cond_broadcast(&q->ready);
  pthread_mutex_unlock(&q->lock);
}

size_t vs_queue_length(struct vs_queue *q) {
  pthread_mutex_lock(&q->lock);
  size_t n = q->len;
  pthread_mutex_unlock(&q->lock);
  return n;
}
