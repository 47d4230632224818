"""The built-in tools. Each factory returns a `Tool`, configured where it needs to be."""

from taskloom.tools.builtin.calculator import calculator_tool
from taskloom.tools.builtin.http_get import HostAllowList, http_get_tool
from taskloom.tools.builtin.read_file import read_file_tool
from taskloom.tools.builtin.sqlite_query import sqlite_query_tool

__all__ = [
    "HostAllowList",
    "calculator_tool",
    "http_get_tool",
    "read_file_tool",
    "sqlite_query_tool",
]
