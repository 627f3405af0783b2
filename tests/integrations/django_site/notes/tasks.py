"""The app's tasks: write a row, noting whether the job found the connection closed."""

from django.db import connection
from notes.models import Note

from spinach import Tasks

tasks = Tasks()


@tasks.task(name="notes:write")
def write(text):
    closed = connection.connection is None  # before this job touches the database
    Note.objects.create(text=text, connection_was_closed=closed)
