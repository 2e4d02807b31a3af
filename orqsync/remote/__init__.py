"""Talking to orq.ai: the client, its pace, and apply."""
