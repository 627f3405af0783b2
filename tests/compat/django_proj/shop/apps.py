"""The shop app's configuration."""

from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "tests.compat.django_proj.shop"
    label = "shop"
