# CMake toolchain file for the Aeron C sources the rusteron crates build (set through
# CMAKE_TOOLCHAIN_FILE in .cargo/config.toml). It only asks for position-independent
# code: rusteron replaces CMAKE_C_FLAGS (dropping the -fPIC the cmake crate would add),
# and the C ABI's libtensorpool.so links those static archives into a shared library,
# which requires PIC.
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
