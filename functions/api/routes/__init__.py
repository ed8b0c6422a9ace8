"""The api function's routers, one module per resource."""
