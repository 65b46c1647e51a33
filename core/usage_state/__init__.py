"""Usage state in Redis: the key layout, the state changes an event makes, the Lua script that
applies a batch of them exactly once, and the reader of a period's state."""
