/*
 * Intrusive doubly linked lists: an element with `prev` and `next`
 * pointers, a list that is a pointer to its first element. Insertion at
 * the head and removal in O(1), written once for every table of live
 * connections and requests [style(9)'s sys/queue.h, cut to what we use].
 */
#ifndef POSTINO_LIST_H
#define POSTINO_LIST_H

/* Put elm first in the list head (an lvalue: the first element or NULL). */
#define LIST_PUSH(head, elm) do {					\
	(elm)->prev = NULL;						\
	(elm)->next = (head);						\
	if ((head) != NULL)						\
		(head)->prev = (elm);					\
	(head) = (elm);							\
} while (0)

/* Take elm out of the list head; its own pointers are left as they were. */
#define LIST_UNLINK(head, elm) do {					\
	if ((elm)->prev != NULL)					\
		(elm)->prev->next = (elm)->next;			\
	else								\
		(head) = (elm)->next;					\
	if ((elm)->next != NULL)					\
		(elm)->next->prev = (elm)->prev;			\
} while (0)

/*
 * The same list kept in arrival order: head is the oldest element, tail
 * the newest, so a queue is served from the head in O(1).
 */
#define QUEUE_APPEND(head, tail, elm) do {				\
	(elm)->next = NULL;						\
	(elm)->prev = (tail);						\
	if ((tail) != NULL)						\
		(tail)->next = (elm);					\
	else								\
		(head) = (elm);						\
	(tail) = (elm);							\
} while (0)

#define QUEUE_UNLINK(head, tail, elm) do {				\
	if ((elm)->next == NULL)					\
		(tail) = (elm)->prev;					\
	LIST_UNLINK(head, elm);						\
} while (0)

#endif
