import sys

from common.service_main import main
from services.trained_model.bootstrap import SERVICE, build_app, migrate

sys.exit(main(SERVICE, build_app, migrate))
