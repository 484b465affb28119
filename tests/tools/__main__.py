"""`python -m tests.tools`: build every tool venv the interoperability tests use."""

from tests.tools import TOOL_REQUIREMENTS, tool_venv

for tool in TOOL_REQUIREMENTS:
    tool_venv(tool)
