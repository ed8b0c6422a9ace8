"""Fixes that only make moto fast and small: no answer of any service changes, only what it costs to give.

The local cloud runs every function, moto and the API in one process, so moto's habits (serializing
through its model, copying objects whole, scanning its own package on every request) were most of its
CPU and memory. What AWS does differently from moto is modelled elsewhere, one module per service.
"""
