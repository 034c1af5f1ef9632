/* main: hale, the key-value service on the hale runtime. */
#include "app.h"

int main(int argc, char **argv, char **envp) {
    return hale_service_main(kv_app_def(), argc, argv, envp);
}
