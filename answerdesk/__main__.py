from answerdesk.cli import app

app()
