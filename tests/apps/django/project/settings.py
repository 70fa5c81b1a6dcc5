"""Settings of the sample Django project: no database, static files collected into staticfiles/."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# a sample app: the key comes from the environment in real deployments
SECRET_KEY = os.environ.get("SECRET_KEY", "sample-app-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = ["django.contrib.staticfiles"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
DATABASES = {}

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
USE_TZ = True
