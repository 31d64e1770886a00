"""Write notebooks/quickstart.ipynb from the cells below (run once after editing them)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

cells = [
    new_markdown_cell(
        "# langchain-lamatic quickstart\n\n"
        "A Lamatic flow is a deployed pipeline that you call over Lamatic's GraphQL API. "
        "`LamaticFlow` makes one a LangChain runnable, so it composes with prompts, parsers "
        "and other runnables.\n\n"
        "This notebook runs against your project when `LAMATIC_ENDPOINT`, `LAMATIC_PROJECT_ID` "
        "and `LAMATIC_API_KEY` (or `LAMATIC_ACCESS_TOKEN`) are set, and against the bundled "
        "local server otherwise. The local server has flows shaped like public AgentKit flows."
    ),
    new_markdown_cell(
        "## Install\n\n```bash\npip install 'langchain-lamatic[testing]'\n```\n\n"
        "The `testing` extra brings the local server; drop it when you only call a real project."
    ),
    new_markdown_cell(
        "## Credentials\n\nWith no credentials in the environment, start the local server and "
        "point the client at it. On a real project, set the three variables instead and use the "
        "flow ids from Lamatic Studio."
    ),
    new_code_cell(
        "import os\n\n"
        "from langchain_lamatic import LamaticClient\n\n"
        "configured = bool(os.environ.get('LAMATIC_ENDPOINT')) and bool(\n"
        "    os.environ.get('LAMATIC_API_KEY') or os.environ.get('LAMATIC_ACCESS_TOKEN')\n"
        ")\n"
        "server = None\n"
        "if configured:\n"
        "    client = LamaticClient()\n"
        "else:\n"
        "    from langchain_lamatic.testing import LamaticTestServer, add_demo_flows\n\n"
        "    server = LamaticTestServer()\n"
        "    server.start()\n"
        "    add_demo_flows(server)\n"
        "    client = LamaticClient(\n"
        "        endpoint=server.endpoint, project_id=server.project_id, api_key=server.api_key\n"
        "    )\n"
        "client  # the repr never shows the credential"
    ),
    new_markdown_cell(
        "## A flow in a chain\n\n`output_key` picks one field of the flow's result, so the "
        "chain hands plain text to the parser."
    ),
    new_code_cell(
        "from langchain_core.output_parsers import StrOutputParser\n\n"
        "from langchain_lamatic import LamaticFlow\n\n"
        "summarise = LamaticFlow(flow_id='article-summariser', client=client, output_key='summary')\n"
        "chain = summarise | StrOutputParser()\n"
        "chain.invoke({'url': 'https://example.org/posts/why-queues-matter'})"
    ),
    new_markdown_cell(
        "## A typed result\n\n`result_model` validates the result into a pydantic model, the "
        "Python counterpart of `executeFlow<T>` in Lamatic's TypeScript SDK."
    ),
    new_code_cell(
        "from pydantic import BaseModel\n\n\n"
        "class Assessment(BaseModel):\n"
        "    score: int\n"
        "    strength: str\n"
        "    weakness: str\n"
        "    recommendation: str\n\n\n"
        "screener = LamaticFlow(\n"
        "    flow_id='automation-hiring', client=client, output_key='output', result_model=Assessment\n"
        ")\n"
        "assessment = screener.invoke(\n"
        "    {\n"
        "        'name': 'Ada Example',\n"
        "        'email': 'ada@example.org',\n"
        "        'job_description': 'Backend engineer, Python, queues',\n"
        "        'resume_url': 'https://example.org/cv/ada.pdf',\n"
        "    }\n"
        ")\n"
        "assert isinstance(assessment, Assessment)\n"
        "assessment"
    ),
    new_markdown_cell(
        "## Errors\n\nEvery failure raises a subclass of `LamaticError` that states what failed, on "
        "which flow, and what to do next. `RETRYABLE_ERRORS` is the tuple to hand to "
        "`with_retry`."
    ),
    new_code_cell(
        "from langchain_lamatic import LamaticError, LamaticNotFoundError, RETRYABLE_ERRORS\n\n"
        "try:\n"
        "    LamaticFlow(flow_id='no-such-flow', client=client).invoke({'prompt': 'hello'})\n"
        "except LamaticNotFoundError as error:\n"
        "    print(type(error).__name__, '-', error)\n"
        "    print('status_code:', error.status_code, 'retryable:', error.retryable)\n\n"
        "retrying = summarise.with_retry(\n"
        "    retry_if_exception_type=RETRYABLE_ERRORS, stop_after_attempt=3\n"
        ")\n"
        "print([cls.__name__ for cls in RETRYABLE_ERRORS])"
    ),
    new_markdown_cell("## Clean up"),
    new_code_cell(
        "client.close()\n"
        "if server is not None:\n"
        "    server.stop()"
    ),
]

notebook = new_notebook(cells=cells)
notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
path = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
nbformat.write(notebook, path)
print(f"wrote {path}")
