from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=200)
    connection_was_closed = models.BooleanField(null=True)
